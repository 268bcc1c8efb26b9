"""What runs a network on a device: picking the device, batched inference, torchrun ranks."""
