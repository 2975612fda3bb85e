"""The privacy filter's secret: the HMAC key that derives surrogates and hashed user ids."""

import dagster as dg


class PrivacyKeyResource(dg.ConfigurableResource):
    """Configured with `dagster.EnvVar("DEPSIM_PRIVACY_KEY")`; the key is never logged or stored."""

    hmac_key: str

    def key(self) -> bytes:
        if not self.hmac_key:
            raise ValueError("DEPSIM_PRIVACY_KEY is empty: set it to a long random secret")
        return self.hmac_key.encode()
