"""Image diffusion networks DiffPure purifies with, and one score interface over them."""
