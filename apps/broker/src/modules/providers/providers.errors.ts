import { defineErrors } from '../../errors/nexus-error.ts';

export const providerErrors = defineErrors({
  provider_not_found: { status: 404, message: 'No live provider with that id or name.' },
  provider_name_taken: { status: 409, message: 'A live provider or alias already uses that name.' },
  invalid_provider: { status: 400, message: 'The provider profile is not valid.' },
  strategy_settings_conflict: {
    status: 400,
    message:
      'A strategy setting is written both flat in params and in params.auth_strategy.config, with different values; details names each one.',
  },
  discovery_failed: {
    status: 422,
    message: 'The OpenID discovery document could not be fetched or is not valid.',
  },
  provider_secret_required: {
    status: 400,
    message:
      'Changing where this provider sends secrets needs its current client_secret in the same request; details.fields lists what changed.',
  },
  provider_destination_locked: {
    status: 409,
    message:
      "Where this provider sends secrets cannot change while its connections hold credentials, unless the request carries the provider's current client_secret.",
  },
  alias_taken: { status: 409, message: 'That alias is already used by a provider name or another alias.' },
  alias_not_found: { status: 404, message: 'No such alias on this provider.' },
});
