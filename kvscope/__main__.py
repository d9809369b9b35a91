"""Allow ``python -m kvscope``."""

from kvscope.cli import main

if __name__ == "__main__":
    main()
