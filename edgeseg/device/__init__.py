"""What goes onto the device: the bundle folder, its deploy files, edgeseg's own wheel, C source."""
