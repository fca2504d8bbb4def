"""`python -m avjax.models.onednn` builds the oneDNN kernels' library now (run.sh does, once per
environment) and prints its path; where it cannot, one warning line says why."""

from avjax.models.onednn import build

build.main()
