"""HTTP faces for browsers and API callers (Starlette apps over the delivery floor)."""
