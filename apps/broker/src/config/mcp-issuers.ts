/**
 * NEXUS_MCP_ISSUERS: which trusted issuers' tokens `/mcp` takes as the bearer token itself (an MCP
 * client acting for a person, with the developer's identity provider as its authorization server),
 * and the agent such a caller acts as. Each entry is `<issuer> <agent_id> [<client_id> …]`: the
 * issuer exactly as its tokens' `iss` says it (a trusted issuer), the agent whose grant and scopes
 * apply, and optionally the OAuth clients (`azp` or `client_id` of the token) accepted; without
 * clients, any client of that issuer whose token names this broker as its audience.
 */
export interface McpIssuer {
  readonly issuer: string;
  readonly agentId: string;
  /** Accepted `azp`/`client_id` values; empty: any client of the issuer. */
  readonly clientIds: readonly string[];
}

export function parseMcpIssuers(
  variable: string,
  entries: readonly string[],
  problems: string[],
  options: { requireHttps: boolean },
): McpIssuer[] {
  const out: McpIssuer[] = [];
  for (const entry of entries) {
    const [issuer, agentId, ...clientIds] = entry.trim().split(/\s+/);
    const url = issuer === undefined ? null : URL.parse(issuer);
    if (agentId === undefined || url === null || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
      problems.push(`${variable}: "${entry.slice(0, 80)}" is not "<issuer URL> <agent_id> [<client_id> …]"`);
      continue;
    }
    if (options.requireHttps && url.protocol !== 'https:') {
      problems.push(`${variable}: ${issuer!.slice(0, 80)} must use https`);
      continue;
    }
    out.push({ issuer: issuer!, agentId, clientIds: [...new Set(clientIds)] });
  }
  // One issuer may serve several agents only when each names its clients: the token's client decides.
  const byIssuer = new Map<string, McpIssuer[]>();
  for (const e of out) byIssuer.set(e.issuer, [...(byIssuer.get(e.issuer) ?? []), e]);
  for (const [issuer, list] of byIssuer) {
    if (list.length < 2) continue;
    const clients = list.flatMap((e) => e.clientIds);
    if (list.some((e) => e.clientIds.length === 0) || new Set(clients).size !== clients.length)
      problems.push(
        `${variable}: ${issuer.slice(0, 80)} is given more than once: then every entry names its client ids, and no client id twice`,
      );
  }
  return out;
}

/** The entry a verified token's issuer and client select, if any. */
export function mcpIssuerFor(
  entries: readonly McpIssuer[],
  issuer: string,
  clientId: string | null,
): McpIssuer | undefined {
  return entries.find(
    (e) =>
      e.issuer === issuer &&
      (e.clientIds.length === 0 || (clientId !== null && e.clientIds.includes(clientId))),
  );
}
