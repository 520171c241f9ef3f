"""vadflow: normalizing flows and VAEs for video anomaly detection on human pose tracks."""
import warnings as _warnings

__version__ = "0.1.0"

# geoopt (used by DSNF) warns at import about optional features; silence it once, here.
_warnings.filterwarnings("ignore", module=r"geoopt(\..*)?")
