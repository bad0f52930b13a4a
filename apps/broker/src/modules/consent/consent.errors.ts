import { defineErrors } from '../../errors/nexus-error.ts';

export const consentErrors = defineErrors({
  return_url_not_allowed: {
    status: 400,
    message:
      'return_url is not on the allow-list (ALLOWED_RETURN_DOMAINS); localhost is allowed only in development.',
  },
  capture_not_available: {
    status: 404,
    message:
      'This capture link is not valid: it expired, was already used, or is not for a static-credential provider.',
  },
  invalid_credentials: {
    status: 400,
    message: 'The submitted credentials do not match what this provider needs.',
  },
  credentials_rejected: {
    status: 422,
    message: 'The provider refused these credentials. Check them and submit again; nothing was stored.',
  },
  credentials_unverifiable: {
    status: 502,
    message:
      'The provider could not be reached to check these credentials. Try again shortly; nothing was stored.',
  },
});
