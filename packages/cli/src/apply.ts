/**
 * Apply: runs the plan's actions in order and stops at the first failure. There is no rollback:
 * every action is one broker call (or two for a replaced scope), and the report lists each action
 * as done, failed or not done, so a second `apply` finishes the job once the cause is fixed.
 */
import { NexusError } from '@nexus-broker/sdk';
import type { Api } from './api.ts';
import { type Io, painter, progressBar, writeSecretFile } from './io.ts';
import type { Manifest, SecretSource } from './manifest.ts';
import type { Action, ExecContext, Plan } from './plan.ts';
import { describeApiError } from './render.ts';

export interface ApplyResult {
  done: Action[];
  failed: { action: Action; message: string } | undefined;
  notDone: Action[];
  notes: string[];
}

const VERB = { create: 'created', update: 'updated', delete: 'deleted', unchanged: 'unchanged' } as const;
const label = (a: Action) =>
  `${a.kind === 'trusted_issuer' ? 'trusted issuer' : a.kind === 'alias' ? 'provider alias' : a.kind} ${a.name}`;

/** A failure message for people: version conflicts say what to do. */
export function failureMessage(a: Action, error: unknown): string {
  if (error instanceof NexusError) {
    if (error.status === 409 && (error.code === 'version_conflict' || error.code === 'conflict'))
      return `${label(a)} was changed on the broker after this plan was read (409 ${error.code}); nothing was written for it. Run \`nexus plan\` again to see the new state.`;
    const fields = (error.details as { fields?: unknown } | undefined)?.fields;
    const moved = Array.isArray(fields) ? fields.join(', ') : 'a field that says where secrets go';
    if (error.code === 'provider_secret_required')
      return `${label(a)}: changing ${moved} moves where the broker sends its secrets, so the broker needs the provider's current client_secret in the same request; give it in the file (\${VAR} or nexus-secret:NAME) and apply again. Nothing was written for it. [${error.status} ${error.code}]`;
    if (error.code === 'provider_destination_locked')
      return `${label(a)}: changing ${moved} moves where the broker sends its secrets, and connections of this provider hold credentials; send the provider's current client_secret (in the file) if it has one, or revoke those connections first. Nothing was written for it. [${error.status} ${error.code}]`;
    const details = Array.isArray(error.details)
      ? ` (${(error.details as { path?: string; message?: string }[]).map((d) => `${d.path ?? ''}: ${d.message ?? ''}`).join('; ')})`
      : '';
    if (error.status === undefined) return describeApiError(error); // no answer: no details
    return `${error.message}${details} [${error.status} ${error.code}]`;
  }
  return (error as Error).message;
}

export async function applyPlan(
  io: Io,
  api: Api,
  manifest: Manifest,
  plan: Plan,
  options: { agentSecretsFile?: string | undefined },
): Promise<ApplyResult> {
  const paint = painter(io);
  const todo = plan.actions.filter((a) => a.op !== 'unchanged' && a.run);
  const refs = new Map<string, string>();
  const ctx: ExecContext = {
    api,
    providerIds: new Map(),
    notes: [],
    async resolveSecret(source: SecretSource) {
      // The plan sends no secret whose variable is unset (plan-providers.ts): this is a bug guard.
      if (source.kind === 'unset') throw new Error(`${source.vars.join(', ')} is not set`);
      if (source.kind !== 'ref') return source.value;
      const cached = refs.get(source.name);
      if (cached !== undefined) return cached;
      const store = manifest.secretStore!;
      const { v } = await api.resolveSecrets({ v: `nexus-secret:${source.name}` }, store.user_id, store.zone);
      refs.set(source.name, v);
      return v;
    },
  };
  const file = options.agentSecretsFile;
  if (file !== undefined)
    ctx.onAgentSecret = (agentId, secret) => {
      writeSecretFile(file, `${agentId}=${secret}\n`, true);
      ctx.notes.push(`the client secret of agent ${agentId} was written to ${file}`);
    };
  const bar = progressBar(io, todo.length);
  const result: ApplyResult = { done: [], failed: undefined, notDone: [], notes: ctx.notes };
  for (const [i, action] of todo.entries()) {
    bar.draw(i, label(action));
    try {
      await action.run!(ctx);
      bar.clear();
      io.out(`${paint('green', '✓')} ${VERB[action.op]} ${label(action)}`);
      result.done.push(action);
      bar.draw(i + 1, label(action));
    } catch (error) {
      bar.clear();
      const message = failureMessage(action, error);
      io.err(`${paint('red', '✗')} failed to ${action.op} ${label(action)}: ${message}`);
      result.failed = { action, message };
      result.notDone = todo.slice(i + 1);
      break;
    }
  }
  bar.clear();
  return result;
}

export function renderResult(io: Io, result: ApplyResult): void {
  const paint = painter(io);
  for (const note of result.notes) io.err(paint('yellow', `note: ${note}`));
  if (!result.failed) {
    io.out(`\nApply complete: ${result.done.length} change(s) applied.`);
    return;
  }
  io.err(
    `\nApply stopped at the first failure. Nothing was rolled back: ${result.done.length} done, 1 failed, ${result.notDone.length} not done.`,
  );
  for (const a of result.done) io.err(`  done      ${a.op} ${label(a)}`);
  io.err(`  FAILED    ${result.failed.action.op} ${label(result.failed.action)}`);
  for (const a of result.notDone) io.err(`  not done  ${a.op} ${label(a)}`);
  io.err('Fix the cause and run `nexus apply` again: it plans from the current state.');
}

export function resultJson(result: ApplyResult): unknown {
  const item = (a: Action, status: string) => ({ action: a.op, kind: a.kind, name: a.name, status });
  return {
    ok: result.failed === undefined,
    items: [
      ...result.done.map((a) => item(a, 'done')),
      ...(result.failed ? [{ ...item(result.failed.action, 'failed'), error: result.failed.message }] : []),
      ...result.notDone.map((a) => item(a, 'not_done')),
    ],
    notes: result.notes,
  };
}
