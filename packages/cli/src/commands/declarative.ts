/** validate, plan, apply, export. */
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { applyPlan, renderResult, resultJson } from '../apply.ts';
import { exportManifest } from '../export.ts';
import { CliError, painter } from '../io.ts';
import { DEFAULT_MANIFEST, loadManifest, type Manifest, type ManifestOptions } from '../manifest.ts';
import { hasChanges, makePlan, type Plan } from '../plan.ts';
import { readCatalog } from '../plan-catalog.ts';
import { emit, planJson, renderOrphans, renderPlan } from '../render.ts';
import { readState } from '../state.ts';
import { type Ctx, confirm } from './context.ts';

/** -f FILE, else nexus-providers.yaml in the current directory (the original CLI's default). */
function manifestFile(ctx: Ctx): string {
  if (ctx.flags.file !== undefined) return ctx.flags.file;
  if (!existsSync(DEFAULT_MANIFEST))
    throw new CliError(
      `no manifest: -f was not given and ${resolve(DEFAULT_MANIFEST)} does not exist. Give one with -f FILE (- for stdin).`,
    );
  return DEFAULT_MANIFEST;
}

/** plan and apply keep a stored secret whose variable is unset; validate names it (manifest.ts). */
function manifestOf(ctx: Ctx, options: ManifestOptions = {}): Manifest {
  const m = loadManifest(manifestFile(ctx), ctx.io.env, options);
  for (const w of m.warnings) ctx.io.err(painter(ctx.io)('yellow', `warning: ${w}`));
  return m;
}

export function validateCommand(ctx: Ctx): number {
  const m = manifestOf(ctx);
  const count = m.scopes.length + m.issuers.length + m.providers.length + m.agents.length;
  if (ctx.format === 'json') ctx.io.out(JSON.stringify({ valid: true, file: m.file, objects: count }));
  else ctx.io.out(`${m.file}: valid (${count} object${count === 1 ? '' : 's'})`);
  return 0;
}

async function planFor(ctx: Ctx): Promise<{ manifest: Manifest; plan: Plan }> {
  const manifest = manifestOf(ctx, { keepUnsetSecrets: true });
  const state = await readState(ctx.api());
  state.catalog = await readCatalog(ctx.api(), manifest, state);
  const plan = makePlan(manifest, state, {
    prune: ctx.flags.prune === true,
    updateSecrets: ctx.flags['update-secrets'] === true,
  });
  return { manifest, plan };
}

/**
 * Exit 0 on success, changes or not; 1 on an error. With --detailed-exitcode (Terraform's
 * `plan -detailed-exitcode`): 0 no changes, 2 changes, 1 error. Orphans are not changes.
 */
export async function planCommand(ctx: Ctx): Promise<number> {
  const { plan } = await planFor(ctx);
  emit(ctx.io, ctx.format, planJson(plan), () => renderPlan(ctx.io, plan, ctx.api().url));
  return ctx.flags['detailed-exitcode'] && hasChanges(plan) ? 2 : 0;
}

export async function applyCommand(ctx: Ctx): Promise<number> {
  const { manifest, plan } = await planFor(ctx);
  const json = ctx.format === 'json';
  if (!hasChanges(plan)) {
    if (json) ctx.io.out(JSON.stringify({ ok: true, items: [], notes: [] }, null, 2));
    else {
      renderOrphans(ctx.io, plan);
      ctx.io.out(
        plan.orphans.length === 0
          ? 'No changes: the broker already matches the manifest.'
          : 'No changes: the broker already matches the manifest; the orphans above are left alone (--prune deletes them).',
      );
    }
    return 0;
  }
  if (!json) renderPlan(ctx.io, plan, ctx.api().url);
  if (!(await confirm(ctx, '\nApply these changes?'))) {
    ctx.io.err('Apply cancelled: nothing was changed.');
    return 1;
  }
  const result = await applyPlan(ctx.io, ctx.api(), manifest, plan, {
    agentSecretsFile: ctx.flags['agent-secrets'],
  });
  if (json) ctx.io.out(JSON.stringify(resultJson(result), null, 2));
  else renderResult(ctx.io, result);
  return result.failed ? 1 : 0;
}

export async function exportCommand(ctx: Ctx): Promise<number> {
  const { yaml, variables, warnings } = exportManifest(await readState(ctx.api()));
  for (const w of warnings) ctx.io.err(`warning: ${w}`);
  if (ctx.flags.out !== undefined) {
    writeFileSync(ctx.flags.out, yaml, { mode: 0o644 });
    chmodSync(ctx.flags.out, 0o644);
    ctx.io.err(`wrote ${ctx.flags.out}`);
  } else ctx.io.write(yaml);
  // Secrets are write-only (issue #24): an unset variable keeps the stored secret, so say so.
  if (variables.length > 0)
    ctx.io.err(
      `Secrets are not exported: ${variables.join(', ')}. plan and apply keep a stored secret while its variable is unset; set it for a broker that lacks the provider, or with --update-secrets to replace it.`,
    );
  return 0;
}
