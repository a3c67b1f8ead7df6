"""Phase 2 reference solutions: face reenactment (landmarks, expression transfer, warping, X2Face)."""
