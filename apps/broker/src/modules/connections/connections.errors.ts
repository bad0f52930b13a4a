import { defineErrors } from '../../errors/nexus-error.ts';

export const connectionErrors = defineErrors({
  connection_not_found: { status: 404, message: 'No connection with that id is visible to this credential.' },
  attention_required: {
    status: 409,
    message: 'The user must reconnect this account: the provider no longer accepts its grant.',
  },
  connection_not_active: { status: 409, message: 'The connection is not active.' },
  refresh_not_supported: {
    status: 409,
    message: 'This connection has no refresh token; its access token is used until it expires.',
  },
  provider_unavailable: {
    status: 502,
    message:
      'The provider did not answer in time or failed; the connection is unchanged. Retry with backoff.',
  },
  credentials_missing: {
    status: 503,
    message:
      'The credentials of this connection are not in the secret backend; the operator must restore them, or the user reconnect.',
  },
  refresh_in_progress: {
    status: 503,
    message: 'Another refresh of this connection is taking too long; retry shortly.',
  },
});
