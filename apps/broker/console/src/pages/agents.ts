/** Agents: create, edit grants, rotate the client secret (shown once), deactivate. */
import type { VNode } from 'preact';
import { useState } from 'preact/hooks';
import { api, canWrite } from '../api.ts';
import type { Agent } from '../types.ts';
import {
  ConfirmButton,
  ErrorBox,
  Field,
  formValues,
  html,
  items,
  Loaded,
  Notice,
  PageTitle,
  ShownOnce,
  Table,
  useAction,
  useLoad,
  when,
} from '../ui.ts';

/** The grant fields, typed as lists separated by commas or spaces. */
const grants = (v: Record<string, string>) => ({
  allowed_providers: items(v.allowed_providers ?? ''),
  allowed_workspaces: items(v.allowed_workspaces ?? ''),
  allowed_scopes: items(v.allowed_scopes ?? ''),
});

function GrantFields({ prefix, agent }: { prefix: string; agent?: Agent }): VNode {
  const list = (values: string[] | undefined) => (values ?? []).join(', ');
  return html`
    <${Field} id=${`${prefix}-providers`} label="Providers" hint="Names, aliases or ids; * for any.">
      <input id=${`${prefix}-providers`} name="allowed_providers" value=${list(agent?.allowed_providers)} aria-describedby=${`${prefix}-providers-hint`} />
    </${Field}>
    <${Field} id=${`${prefix}-workspaces`} label="Users (workspaces)" hint="* for any.">
      <input id=${`${prefix}-workspaces`} name="allowed_workspaces" value=${list(agent?.allowed_workspaces)} aria-describedby=${`${prefix}-workspaces-hint`} />
    </${Field}>
    <${Field} id=${`${prefix}-scopes`} label="Scopes">
      <input id=${`${prefix}-scopes`} name="allowed_scopes" value=${list(agent?.allowed_scopes)} />
    </${Field}>`;
}

function CreateAgent({ onCreated }: { onCreated: () => void }): VNode {
  const action = useAction();
  const [secret, setSecret] = useState<{ agent: string; value: string } | undefined>();
  const submit = (event: Event) => {
    const v = formValues(event);
    const form = event.currentTarget as HTMLFormElement;
    return action.run(async () => {
      const created = await api<Agent & { client_secret?: string }>('POST', '/admin/v1/agents', {
        body: { agent_id: v.agent_id, description: v.description ?? '', ...grants(v) },
      });
      form.reset();
      if (created.client_secret !== undefined)
        setSecret({ agent: created.agent_id, value: created.client_secret });
      onCreated();
      return `Agent ${created.agent_id} created.`;
    });
  };
  return html`<details class="panel">
    <summary>Create an agent</summary>
    <form onSubmit=${submit} aria-label="Create an agent">
      <${Field} id="g-id" label="Agent id" hint="Lower-case letters, digits, dot, dash, underscore.">
        <input id="g-id" name="agent_id" required maxlength="64" pattern="[a-z0-9][a-z0-9._\\-]*" aria-describedby="g-id-hint" />
      </${Field}>
      <${Field} id="g-description" label="Description"><input id="g-description" name="description" maxlength="500" /></${Field}>
      <${GrantFields} prefix="g" />
      <button type="submit" class="primary" disabled=${action.busy}>Create</button>
    </form>
    <${Notice} message=${action.message} />
    <${ErrorBox} error=${action.error} />
    ${secret && html`<${ShownOnce} label=${`Client secret of ${secret.agent}.`} value=${secret.value} />`}
  </details>`;
}

function AgentDetail({ agent, onChanged }: { agent: Agent; onChanged: () => void }): VNode {
  const action = useAction();
  const [secret, setSecret] = useState<string | undefined>();
  const writable = canWrite();
  const patch = (body: Record<string, unknown>, done: string) =>
    action.run(async () => {
      await api('PATCH', `/admin/v1/agents/${agent.id}`, { body });
      onChanged();
      return done;
    });
  const rotate = () =>
    action.run(async () => {
      const rotated = await api<{ client_secret: string; previous_expire_at: string }>(
        'POST',
        `/admin/v1/agents/${agent.id}/secrets`,
        { body: { overlap_seconds: 3600 } },
      );
      setSecret(rotated.client_secret);
      onChanged();
      return `New secret issued; the previous ones keep working until ${when(rotated.previous_expire_at)}.`;
    });
  return html`<section class="panel" aria-labelledby=${`agent-${agent.id}`}>
    <h2 id=${`agent-${agent.id}`}>${agent.agent_id}</h2>
    <p>${agent.description || html`<span class="muted">No description.</span>`}</p>
    <p>${agent.secrets.length} client secret(s); created ${when(agent.created_at)}.</p>
    ${
      writable
        ? html`<form onSubmit=${(e: Event) => patch(grants(formValues(e)), 'Grants saved.')} aria-label=${`Grants of ${agent.agent_id}`}>
          <${GrantFields} prefix=${`e-${agent.id}`} agent=${agent} />
          <button type="submit" class="primary" disabled=${action.busy}>Save grants</button>
        </form>
        <div class="actions">
          <button type="button" disabled=${action.busy} onClick=${rotate}>Rotate secret</button>
          ${
            agent.active
              ? html`<${ConfirmButton} label="Deactivate" confirmLabel="Yes, deactivate (its tokens stop working)" disabled=${action.busy} onConfirm=${() => patch({ active: false }, 'Deactivated.')} />`
              : html`<button type="button" disabled=${action.busy} onClick=${() => patch({ active: true }, 'Activated.')}>Activate</button>`
          }
        </div>`
        : html`<dl class="facts">
          <dt>Providers</dt><dd>${agent.allowed_providers.join(', ') || 'none'}</dd>
          <dt>Users</dt><dd>${agent.allowed_workspaces.join(', ') || 'none'}</dd>
          <dt>Scopes</dt><dd>${agent.allowed_scopes.join(', ') || 'none'}</dd>
        </dl>`
    }
    <${Notice} message=${action.message} />
    <${ErrorBox} error=${action.error} />
    ${secret && html`<${ShownOnce} label=${`New client secret of ${agent.agent_id}.`} value=${secret} />`}
  </section>`;
}

/** Agents with their provider grants by name (the API answers provider ids). */
async function loadAgents(): Promise<{ agents: Agent[] }> {
  const [{ agents }, providers] = await Promise.all([
    api<{ agents: Agent[] }>('GET', '/admin/v1/agents'),
    api<{ id: string; name: string }[]>('GET', '/providers'),
  ]);
  const names = new Map(providers.map((p) => [p.id, p.name]));
  return {
    agents: agents.map((a) => ({
      ...a,
      allowed_providers: a.allowed_providers.map((id) => names.get(id) ?? id),
    })),
  };
}

export function AgentsPage(): VNode {
  const [load, reload] = useLoad(loadAgents, []);
  const [open, setOpen] = useState<string | undefined>();
  return html`<${PageTitle}>Agents</${PageTitle}>
    ${canWrite() && html`<${CreateAgent} onCreated=${reload} />`}
    <${Loaded} load=${load} render=${({ agents }: { agents: Agent[] }) => {
      const selected = agents.find((a) => a.id === open);
      return html`<${Table}
          caption="Agents"
          head=${['Agent', 'Active', 'Providers', 'Users', 'Secrets', '']}
          rows=${agents.map((a) => [
            a.agent_id,
            a.active ? 'yes' : 'no (deactivated)',
            a.allowed_providers.join(', ') || 'none',
            a.allowed_workspaces.join(', ') || 'none',
            String(a.secrets.length),
            html`<button type="button" aria-expanded=${open === a.id} onClick=${() => setOpen(open === a.id ? undefined : a.id)}>
              ${open === a.id ? 'Close' : 'Open'}<span class="sr-only"> ${a.agent_id}</span></button>`,
          ])}
          empty="No agent yet."
        />
        ${selected && html`<${AgentDetail} key=${selected.id} agent=${selected} onChanged=${reload} />`}`;
    }}
    />`;
}
