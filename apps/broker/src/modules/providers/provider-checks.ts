/**
 * What a profile must pass before it is written: the strategy settings folded in, its own rules
 * (no I/O), then the issuer's discovery document; and the warnings a write answers with.
 */
import { errorFrom } from '../../errors/nexus-error.ts';
import { parseClientKey } from './client-key.ts';
import type { Discovery } from './discovery.ts';
import { openidWarning, type ProviderWarning } from './id-token-trust.ts';
import { foldStrategySettings } from './provider-params.ts';
import { providerErrors } from './providers.errors.ts';
import type { StoredProfile } from './providers.schemas.ts';
import { type Problem, validateProfile } from './providers.validate.ts';

export function createProviderChecks(deps: {
  discovery: Pick<Discovery, 'refresh'>;
  allowLoopbackHttp: boolean;
  /** `NEXUS_EGRESS_ALLOWED_CIDRS`: literal addresses inside these ranges may be registered. */
  egressAllowedCidrs?: readonly string[] | undefined;
}) {
  const { discovery } = deps;

  /** The profile's own rules (no I/O): throws `invalid_provider` with every problem. */
  function validate(
    profile: StoredProfile,
    hasClientSecret: boolean,
    newSecret?: string,
    foldProblems: readonly Problem[] = [],
  ): void {
    const problems = [...foldProblems];
    problems.push(
      ...validateProfile(profile, {
        allowLoopbackHttp: deps.allowLoopbackHttp,
        hasClientSecret,
        ...(deps.egressAllowedCidrs ? { egressAllowedCidrs: deps.egressAllowedCidrs } : {}),
      }),
    );
    if (
      profile.auth_type === 'oauth2' &&
      profile.auth_header === 'private_key_jwt' &&
      newSecret !== undefined
    ) {
      const key = parseClientKey(newSecret);
      if (!key.ok) problems.push({ path: 'client_secret', message: key.message });
    }
    if (problems.length > 0) throw errorFrom(providerErrors, 'invalid_provider', { details: problems });
  }

  /** Fetches the issuer's discovery document when the profile starts to rely on it. */
  async function discover(profile: StoredProfile, previous?: StoredProfile): Promise<void> {
    const discoveryChanged = !previous?.enable_discovery || previous.issuer !== profile.issuer;
    if (profile.auth_type === 'oauth2' && profile.enable_discovery && profile.issuer && discoveryChanged) {
      await discovery.refresh(profile.issuer);
    }
  }

  return {
    validate,
    discover,

    /**
     * The profile as it is stored: strategy settings written flat in `params` (the original's habit)
     * folded into `params.auth_strategy`, and an `api_key` provider's default header written in
     * (provider-params.ts). A setting given both ways with different values is refused here; the
     * other problems are validated with the rest.
     */
    fold(
      profile: StoredProfile,
      previous?: StoredProfile,
    ): { profile: StoredProfile; problems: readonly Problem[] } {
      const folded = foldStrategySettings(profile, previous);
      if (folded.conflicts.length > 0)
        throw errorFrom(providerErrors, 'strategy_settings_conflict', { details: folded.conflicts });
      return { profile: { ...profile, params: folded.params }, problems: folded.problems };
    },

    /** Validation shared by create, replace and patch; discovery runs last, only for a valid profile. */
    async check(
      profile: StoredProfile,
      hasClientSecret: boolean,
      previous?: StoredProfile,
      newSecret?: string,
      foldProblems: readonly Problem[] = [],
    ): Promise<void> {
      validate(profile, hasClientSecret, newSecret, foldProblems);
      await discover(profile, previous);
    },

    /**
     * Warnings for a profile just written (`{warnings}`, or nothing when there are none): for an
     * oauth2 provider with `openid` in its default scopes and no `enable_discovery`, whether its
     * id_tokens will be verified or discarded (issue #17). Reads the discovery document live
     * (through the egress guard); never refuses the write.
     */
    async warningsFor(profile: StoredProfile): Promise<{ warnings?: ProviderWarning[] }> {
      const warning = await openidWarning(profile, (issuer) => discovery.refresh(issuer));
      return warning === undefined ? {} : { warnings: [warning] };
    },
  };
}

export type ProviderChecks = ReturnType<typeof createProviderChecks>;
