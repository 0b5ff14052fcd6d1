"""What goes onto the device (bundle, deploy files, own wheel, C source) and how fast it runs there (estimate, plan)."""
