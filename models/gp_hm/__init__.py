"""GP-HM: Gaussian processes with spectral-mixture kernels on a grid (Kronecker algebra) for
high-frequency and multi-scale PDEs (Fang et al., ICLR 2024)."""
