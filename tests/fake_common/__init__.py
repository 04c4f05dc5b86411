"""What the fake A1111, Forge and Neo share where the real WebUIs share the code (Forge copied it from A1111, or
both run the same upstream file): pure classes and functions, each citing the real files and lines it stands for.

Nothing here imports a WebUI package (`modules`, `backend`, `ldm`, ...) or keeps state: these modules stay in
sys.modules while the harnesses swap the fakes in and out, so each fake's state stays in its own modules."""
