"""FGAT's standalone front end over diffusers: the library pipeline (`load_pipeline`, `FGATPipeline.transfer`),
the model loading with the shipped configs and the bundled demo model, and the `fgat` command line
(`transfer`, `batch`, `presets`). The method itself is `fgat_core`; this package only hosts it."""
