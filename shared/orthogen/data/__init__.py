"""Dataset preparation and loading: the CTSpine1K-style case layout, X2CT case files, bi-planar inputs."""
