import sys

from .cpus import apply_thread_env

if __name__ == "__main__":
    apply_thread_env()  # before torch loads: threads from the cores actually free (cpus.py)
    from .cli import main

    sys.exit(main())
