"""Phase 2 — face reenactment: command-line tools and the generated student templates."""
