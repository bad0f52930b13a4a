import * as z from 'zod';
import { CliExit } from '../context.ts';
import { credentialVar } from '../credential-env.ts';

/** `nexus mcp`'s environment (docs/mcp.md): the broker and the agent's credential, as the SDKs read them. */
const mcpEnvSchema = z.object({
  NEXUS_URL: z.url({ protocol: /^https?$/ }).optional(),
  NEXUS_AGENT_TOKEN: credentialVar(8192),
  NEXUS_CLIENT_ID: credentialVar(200),
  NEXUS_CLIENT_SECRET: credentialVar(512),
  NEXUS_USER_ID: z
    .string()
    .trim()
    .min(1)
    .max(200)
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
    .regex(/^[^\u0000-\u001f\u007f]*$/, 'no control characters')
    .optional(),
});

/** Runs the stdio relay to the broker's `/mcp`; every configuration problem is listed at once. */
export async function mcpCommand(env: NodeJS.ProcessEnv): Promise<number> {
  const problems: string[] = [];
  const e: Record<string, string | undefined> = {};
  for (const [name, schema] of Object.entries(mcpEnvSchema.shape)) {
    const raw = env[name] === '' ? undefined : env[name];
    const result = (schema as z.ZodType<string | undefined>).safeParse(raw);
    if (result.success) e[name] = result.data;
    else problems.push(`${name}: ${result.error.issues[0]?.message ?? 'invalid'}`);
  }
  if (env.NEXUS_URL === undefined || env.NEXUS_URL === '')
    problems.push('NEXUS_URL: required, the broker (its public address)');
  const credential =
    e.NEXUS_AGENT_TOKEN !== undefined
      ? { token: e.NEXUS_AGENT_TOKEN }
      : e.NEXUS_CLIENT_ID !== undefined && e.NEXUS_CLIENT_SECRET !== undefined
        ? { clientId: e.NEXUS_CLIENT_ID, clientSecret: e.NEXUS_CLIENT_SECRET }
        : undefined;
  if (credential === undefined)
    problems.push(
      "NEXUS_CLIENT_ID and NEXUS_CLIENT_SECRET (or NEXUS_AGENT_TOKEN): required, the agent's credential",
    );
  if (problems.length > 0)
    throw new CliExit(`nexus mcp: configuration errors:\n  ${problems.join('\n  ')}`, 2);
  // The MCP SDK loads only for this command, not with every other one.
  const { runStdioRelay } = await import('../../modules/mcp/mcp-stdio.ts');
  await runStdioRelay({
    brokerUrl: new URL(e.NEXUS_URL!),
    credential: credential!,
    userId: e.NEXUS_USER_ID,
    report: (line) => process.stderr.write(`${line}\n`),
  });
  return 0;
}
