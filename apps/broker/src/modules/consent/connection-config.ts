import type { TokenEndpointResponse } from 'oauth4webapi';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { ConnectionsService } from '../connections/connections.service.ts';
import type { ActivationTokens } from '../connections/connections.types.ts';
import {
  type ConnectionConfig,
  connectionParameters,
  forConnection,
  learntFrom,
  resolveConnectionConfig,
} from '../providers/connection-params.ts';
import type { OAuthClient } from '../providers/oauth-client.ts';
import type { ProviderView, StoredProfile } from '../providers/providers.schemas.ts';
import type { ProvidersService } from '../providers/providers.service.ts';
import { secretHostParameters } from '../providers/secret-hosts.ts';
import { consentErrors } from './consent.errors.ts';
import { learntFromApi } from './learnt-api.ts';

/**
 * request-connection's `connection_config` checked against the provider's
 * `params.connection_parameters` (decision 0015): the values to store (defaults filled in), or a
 * 400 `invalid_connection_config` naming each refused name, before anything is created.
 */
export function checkedConnectionConfig(
  provider: ProviderView,
  given: Readonly<Record<string, unknown>> | undefined,
): Record<string, string> | null {
  const { values, problems } = resolveConnectionConfig(provider, given);
  // A provider registered before its pattern had to pin the host its client secret goes to: only
  // the operator's default reaches it, never a value the requester chose.
  for (const { path, name } of secretHostParameters(provider))
    if (
      given !== undefined &&
      Object.hasOwn(given, name) &&
      given[name] !== connectionParameters(provider.params)[name]?.default
    )
      problems.push({
        name,
        message: `chooses the host of the provider's ${path}, where its client secret is sent: an operator must pin the parameter's pattern to the provider's domain first`,
      });
  if (problems.length > 0)
    throw errorFrom(consentErrors, 'invalid_connection_config', {
      message: `connection_config: ${problems.map((p) => `${p.name} ${p.message}`).join('; ')}.`,
      details: { problems },
    });
  return values;
}

/**
 * What the connection stores at activation: the token answer, and its values with those learnt at
 * consent (`params.learnt`) added: first those of the token answer, then those read from an API
 * with the new access token (learnt-api.ts), whose URLs may name the former. Without learnt values,
 * the stored values stay. A learnt value that cannot be read or does not fit its pattern fails the
 * consent (`detail` names it, never its value). Never throws.
 */
export async function withLearnt(
  profile: StoredProfile,
  stored: ConnectionConfig | null,
  tokens: TokenEndpointResponse,
  oc: Pick<OAuthClient, 'requestOptions'>,
): Promise<{ ok: true; activation: ActivationTokens } | { ok: false; detail: string }> {
  const fromAnswer = learntFrom(profile, tokens as Record<string, unknown>);
  const known = { ...stored, ...fromAnswer.values };
  const fromApi =
    fromAnswer.problems.length > 0
      ? { values: {}, problems: [] }
      : await learntFromApi(profile, known, tokens.access_token, oc);
  const problems = [...fromAnswer.problems, ...fromApi.problems];
  if (problems.length > 0)
    return { ok: false, detail: problems.map((p) => `learnt value ${p.name} ${p.message}`).join('; ') };
  const values = { ...fromAnswer.values, ...fromApi.values };
  if (Object.keys(values).length === 0) return { ok: true, activation: { kind: 'oauth2', tokens } };
  return { ok: true, activation: { kind: 'oauth2', tokens, connectionConfig: { ...stored, ...values } } };
}

/** The provider's profile with its URL placeholders filled with a connection's values. */
export async function loadForConnection(
  providers: Pick<ProvidersService, 'loadForUse'>,
  providerId: string,
  values: ConnectionConfig | null,
): Promise<{ profile: StoredProfile; clientSecret: string | undefined; stored: ConnectionConfig | null }> {
  const { profile, clientSecret } = await providers.loadForUse(providerId);
  return { profile: forConnection(profile, values), clientSecret, stored: values };
}

/** At the callback: the profile filled with the values the flow's connection stored at request. */
export async function loadForFlow(
  deps: {
    providers: Pick<ProvidersService, 'loadForUse'>;
    connections: Pick<ConnectionsService, 'describe'>;
  },
  flow: { readonly provider_id: string; readonly connection_id: string },
) {
  const stored = (await deps.connections.describe(flow.connection_id))?.connection_config ?? null;
  return loadForConnection(deps.providers, flow.provider_id, stored);
}
