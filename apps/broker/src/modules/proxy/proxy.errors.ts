import { defineErrors } from '../../errors/nexus-error.ts';

export const proxyErrors = defineErrors({
  unknown_route: {
    status: 404,
    message: 'No proxy route with that name: a route is a provider name with an API base URL, or configured.',
  },
  route_mismatch: {
    status: 400,
    message: "That connection belongs to another provider: send it through that provider's route.",
  },
  base_url_unresolved: {
    status: 409,
    message:
      "The route's base URL names a per-connection value (`{name}` in the provider's api_base_url) that this connection does not have: connect it again. Nothing was sent upstream.",
  },
  token_fetch_failed: {
    status: 502,
    message:
      'The credential for this connection could not be obtained; nothing was sent upstream. Retry later.',
  },
  auth_injection_failed: {
    status: 502,
    message: "The credential could not be applied with the provider's strategy; nothing was sent upstream.",
  },
  upstream_error: {
    status: 502,
    message: 'The upstream API could not be reached or refused the connection.',
  },
  upstream_timeout: { status: 504, message: 'The upstream API did not answer in time.' },
});
