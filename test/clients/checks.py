"""The CHECK lines the client tests print (test/perl/AgentGate/Clients.pm
reads them): one per named step, ok or fail with a detail."""


def check(name, ok, detail=""):
    print(f"CHECK {name} {'ok' if ok else 'fail'} {detail}".rstrip(), flush=True)


def step(name):
    """Decorator: run the function now, its result or failure is the check."""
    def wrap(fn):
        try:
            check(name, True, fn() or "")
        except Exception as e:  # noqa: BLE001 - every failure is a check result
            code = getattr(getattr(e, "diag", None), "sqlstate", "") or ""
            check(name, False, f"{code} {type(e).__name__}: {e}".replace("\n", " "))
        return fn
    return wrap
