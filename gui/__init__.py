"""keras_adaptive_gui: compare keras_adaptive optimizers live in the browser (installed from `gui/`)."""
