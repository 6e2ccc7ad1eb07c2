"""Functions for tests that run work in spawned processes; kept free of heavy imports, since
every spawned process imports this module again."""
import os


def crash_on(value: int, crash_value: int, marker: str, times: int) -> int:
    """``2 * value``; but the process dies, without a Python exception (as a segfault does), on
    ``crash_value`` the first ``times`` times it is asked (counted in the file ``marker``)."""
    if value == crash_value:
        crashes = int(open(marker).read()) if os.path.exists(marker) else 0
        if crashes < times:
            with open(marker, "w") as f:
                f.write(str(crashes + 1))
            os._exit(1)
    return 2 * value


def process_id(_) -> int:
    return os.getpid()
