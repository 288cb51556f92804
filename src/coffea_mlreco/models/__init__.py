"""Model architectures (torch ``nn.Module``s); trained weights ship next to them with a model card."""
