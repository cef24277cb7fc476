"""The baseline CNN that ``curator baseline`` trains and scores on every release.

Modules (data flows down this list):

    data      a release's splits as numpy arrays, from a local release folder or a Hub
              repo@revision, both through datasets.load_dataset
    model     the small 2D CNN (Keras 3, backend from KERAS_BACKEND, JAX by default),
              documented layer by layer
    train     seeded training, deterministic batch order, early stopping on validation,
              class weights; one compile per model shape
    metrics   accuracy, balanced accuracy, macro-F1, per-class P/R/F1, confusion matrix,
              vectorised bootstrap 95% intervals, stratified K-fold grouped by cluster
    report    baseline.json, confusion-matrix and training-curve PNGs, the card's baseline
              section, the terminal table
    gate      --fail-under / --max-drop against the previous release's baseline
    run       score_release(): the whole command as one call (what the CLI and the demo use)

Keras and JAX are imported inside functions, so importing this package is cheap.
"""
