"""Latent Explorer's trainer: AE, VAE and GAN training that writes self-describing, safe checkpoints."""
