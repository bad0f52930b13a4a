/** Shared pieces of the console's pages: templates, loading, errors, tables, confirmations. */
import htm from 'htm';
import { type ComponentChildren, h, type VNode } from 'preact';
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.ts';

/** JSX-like templates without a compiler step of their own (htm), rendered by Preact. */
export const html = htm.bind(h) as (strings: TemplateStringsArray, ...values: unknown[]) => VNode;

export type Load<T> =
  | { state: 'loading' }
  | { state: 'error'; error: ApiError }
  | { state: 'done'; value: T };

const asApiError = (error: unknown): ApiError =>
  error instanceof ApiError ? error : new ApiError(0, 'client_error', String(error));

/**
 * Runs `load` when `deps` change; `reload` runs it again and keeps showing the current value
 * until the new one arrives (so what is on the page, such as a secret shown once, stays).
 */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[]): [Load<T>, () => void] {
  const [result, setResult] = useState<Load<T>>({ state: 'loading' });
  const [round, setRound] = useState(0);
  const lastRound = useRef(round);
  useEffect(() => {
    let current = true;
    if (lastRound.current === round) setResult({ state: 'loading' });
    lastRound.current = round;
    load().then(
      (value) => current && setResult({ state: 'done', value }),
      (error: unknown) => current && setResult({ state: 'error', error: asApiError(error) }),
    );
    return () => {
      current = false;
    };
  }, [...deps, round]);
  return [result, useCallback(() => setRound((n) => n + 1), [])];
}

/** The outcome of an action (a button or form): busy while it runs, then its error or message. */
export function useAction(): {
  busy: boolean;
  error: ApiError | undefined;
  message: string | undefined;
  run: (action: () => Promise<string | undefined>) => Promise<void>;
} {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>();
  const [message, setMessage] = useState<string | undefined>();
  const run = async (action: () => Promise<string | undefined>) => {
    setBusy(true);
    setError(undefined);
    setMessage(undefined);
    try {
      setMessage(await action());
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, message, run };
}

export function ErrorBox({ error }: { error: ApiError | undefined }): VNode | null {
  if (error === undefined) return null;
  return html`<div class="error" role="alert">
    <strong>${error.message}</strong> <code>${error.code}</code>
    ${error.details.length > 0 && html`<ul>${error.details.map((d) => html`<li><code>${d.path}</code>: ${d.message}</li>`)}</ul>`}
  </div>`;
}

export function Notice({ message }: { message: string | undefined }): VNode | null {
  return message === undefined ? null : html`<p class="notice" role="status">${message}</p>`;
}

/** The content of a load: a status line while loading, the error, or `render(value)`. */
export function Loaded<T>({ load, render }: { load: Load<T>; render: (value: T) => ComponentChildren }) {
  if (load.state === 'loading') return html`<p class="muted" role="status">Loading…</p>`;
  if (load.state === 'error') return html`<${ErrorBox} error=${load.error} />`;
  return html`${render(load.value)}`;
}

/** A page's heading, focused when the page opens so that screen readers announce it. */
export function PageTitle({ children }: { children: ComponentChildren }): VNode {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => ref.current?.focus(), []);
  return html`<h1 tabindex="-1" ref=${ref}>${children}</h1>`;
}

export function Table({
  caption,
  head,
  rows,
  empty,
}: {
  caption: string;
  head: readonly string[];
  rows: readonly ComponentChildren[][];
  empty: string;
}): VNode {
  if (rows.length === 0) return html`<p class="muted">${empty}</p>`;
  return html`<div class="table-wrap" role="region" aria-label=${caption} tabindex="0">
    <table>
      <caption class="sr-only">${caption}</caption>
      <thead><tr>${head.map((title) => html`<th scope="col">${title}</th>`)}</tr></thead>
      <tbody>${rows.map((cells) => html`<tr>${cells.map((c) => html`<td>${c}</td>`)}</tr>`)}</tbody>
    </table>
  </div>`;
}

export const when = (iso: string | null | undefined): string =>
  iso === null || iso === undefined ? '—' : new Date(iso).toLocaleString();

export function Status({ value }: { value: string }): VNode {
  return html`<span class=${`badge badge-${value.replace(/[^a-z_]/g, '')}`}>${value.replace(/_/g, ' ')}</span>`;
}

/**
 * A button that asks again before doing something that cannot be undone: the first press shows
 * "Confirm" and "Cancel" in its place.
 */
export function ConfirmButton({
  label,
  confirmLabel,
  disabled,
  onConfirm,
}: {
  label: string;
  confirmLabel: string;
  disabled?: boolean;
  onConfirm: () => void;
}): VNode {
  const [asking, setAsking] = useState(false);
  const confirm = useRef<HTMLButtonElement>(null);
  // The button pressed is replaced: keyboard focus moves to the question's answer.
  useLayoutEffect(() => {
    if (asking) confirm.current?.focus();
  }, [asking]);
  if (!asking)
    return html`<button type="button" class="danger" disabled=${disabled} onClick=${() => setAsking(true)}>${label}</button>`;
  return html`<span class="confirm" role="group" aria-label=${label}>
    <button type="button" class="danger" ref=${confirm} onClick=${() => {
      setAsking(false);
      onConfirm();
    }}>${confirmLabel}</button>
    <button type="button" onClick=${() => setAsking(false)}>Cancel</button>
  </span>`;
}

/** A secret the API returns once (a new key or client secret): shown here, and never again. */
export function ShownOnce({ label, value }: { label: string; value: string }): VNode {
  return html`<div class="once" role="status">
    <p><strong>${label}</strong> It is shown only now: copy it somewhere safe.</p>
    <input class="secret" readonly aria-label=${label} value=${value} onFocus=${(e: FocusEvent) => (e.target as HTMLInputElement).select()} />
  </div>`;
}

/** A labelled form field. */
export function Field({
  id,
  label,
  hint,
  children,
}: {
  id: string;
  label: string;
  hint?: string;
  children: ComponentChildren;
}): VNode {
  return html`<div class="field">
    <label for=${id}>${label}</label>
    ${children}
    ${hint !== undefined && html`<small id=${`${id}-hint`}>${hint}</small>`}
  </div>`;
}

/** Splits a list typed as text ("a, b c") into its items. */
export const items = (text: string): string[] => text.split(/[\s,]+/).filter((s) => s.length > 0);

/** The values of a submitted form, as strings. */
export function formValues(event: Event): Record<string, string> {
  event.preventDefault();
  const data = new FormData(event.currentTarget as HTMLFormElement);
  return Object.fromEntries([...data.entries()].map(([k, v]) => [k, String(v)]));
}
