"""The experiments: one module per net, each owning its whole config and its variants.

Each module defines `VARIANTS`, a dict variant name -> function returning that variant's
`ml_collections.ConfigDict` (the first is the default). `avjax.config` imports only the module
asked for, by name, so the library never imports them all.
"""

# The experiments `--experiment=NAME[:VARIANT]` knows, in the order the help lists them.
NAMES = ("l3", "ave", "avol")
