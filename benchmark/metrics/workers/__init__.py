"""Worker scripts run by side environments' interpreters (standalone: they import nothing from benchmark)."""
