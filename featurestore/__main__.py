"""``python -m featurestore``: the ``featurestore`` command, for when the console script is not
on the PATH (and for ``python -X importtime -m featurestore --help``)."""

from featurestore.cli import main

if __name__ == "__main__":
    main()
