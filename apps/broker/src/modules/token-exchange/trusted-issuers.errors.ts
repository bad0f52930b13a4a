import { defineErrors } from '../../errors/nexus-error.ts';

export const trustedIssuerErrors = defineErrors({
  trusted_issuer_not_found: { status: 404, message: 'No live trusted issuer with that id.' },
  trusted_issuer_taken: { status: 409, message: 'A live trusted issuer already has that issuer identifier.' },
  invalid_trusted_issuer: {
    status: 400,
    message: 'The trusted issuer definition is not valid; see details.',
  },
  trusted_issuer_discovery_failed: {
    status: 422,
    message: "The issuer's OpenID discovery document could not be used to find its keys; see details.",
  },
});
