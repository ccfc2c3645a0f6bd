"""Training: the LightningModules (plain and GAN), callbacks, crash-safe checkpoint IO and speed options."""
