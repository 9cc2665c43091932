"""smallbatch_jax: which batch size, which learning rate? (Masters & Luschi, 2018, in JAX)."""
