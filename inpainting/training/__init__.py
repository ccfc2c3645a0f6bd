"""Training: the LightningModules (plain and GAN), callbacks, crash-safe checkpoint IO and speed options."""

import warnings


def quiet_known_warnings() -> None:
    """Lightning builds a ``torch.utils._pytree.LeafSpec()`` in every CombinedLoader, which newer torch deprecates
    with a FutureWarning printed on every fit and test. The code is Lightning's, not ours: silence exactly that
    message from exactly that module until a Lightning release uses ``treespec_leaf()``."""
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree",
    )


quiet_known_warnings()
