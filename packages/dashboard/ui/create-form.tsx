import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { errorText, RpcError, rpc } from './api';
import { setNotice } from './notice';
import { PageHeading } from './page-heading';
import { href, navigate } from './router';

type FieldId = 'name' | 'cpus' | 'memory' | 'kernel' | 'cmdline' | 'disk' | 'forwards';

type Errors = Partial<Record<FieldId, string>>;

interface ForwardInput {
  hostPort: number;
  guestPort: number;
  protocol?: 'tcp' | 'udp';
  hostIp?: string;
}

const FORWARD = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d+):(\d+)(?:\/(tcp|udp))?$/i;

/** "8080:80/tcp, 2222:22, 127.0.0.1:5432:5432" → forward specs; the port numbers are the server's to judge. */
export function parseForwards(text: string): { forwards: ForwardInput[] } | { error: string } {
  const forwards: ForwardInput[] = [];
  for (const item of text.split(/[\s,]+/).filter(Boolean)) {
    const match = FORWARD.exec(item);
    if (!match) {
      return { error: `“${item}” is not HOST:GUEST or HOST:GUEST/udp (for example 8080:80/tcp)` };
    }
    const [, hostIp, hostPort, guestPort, protocol] = match;
    forwards.push({
      hostPort: Number(hostPort),
      guestPort: Number(guestPort),
      ...(protocol ? { protocol: protocol.toLowerCase() as 'tcp' | 'udp' } : {}),
      ...(hostIp ? { hostIp } : {}),
    });
  }
  return { forwards };
}

/** The form field that shows an error about spec field `path` (`memory`, `network.forwards[0].hostPort`, …). */
export function fieldFor(path: string | undefined): FieldId | undefined {
  if (path === undefined) return undefined;
  if (path === 'name') return 'name';
  if (path === 'cpus' || path === 'cpusMax') return 'cpus';
  if (path === 'memory' || path === 'memoryHotplug') return 'memory';
  if (path.startsWith('kernel')) return 'kernel';
  if (path === 'cmdline') return 'cmdline';
  if (path.startsWith('disks')) return 'disk';
  if (path.startsWith('network.forwards')) return 'forwards';
  return undefined;
}

/** The daemon's message without its `field: ` prefix, naming the forward or disk when there are several. */
function fieldMessage(path: string, message: string): string {
  const text = message.startsWith(`${path}: `) ? message.slice(path.length + 2) : message;
  const item = /^(?:network\.forwards|disks)\[(\d+)\](?:\.(\w+))?/.exec(path);
  if (!item || !path.startsWith('network.forwards')) return text;
  return `Forward ${Number(item[1]) + 1}${item[2] ? ` (${item[2]})` : ''}: ${text}`;
}

const LABELS: Record<FieldId, string> = {
  name: 'Name',
  cpus: 'vCPUs',
  memory: 'Memory',
  kernel: 'Kernel',
  cmdline: 'Kernel command line',
  disk: 'Disk image',
  forwards: 'Forwards',
};

const fieldId = (field: FieldId) => `create-${field}`;
const errorId = (field: FieldId) => `create-${field}-error`;
const hintId = (field: FieldId) => `create-${field}-hint`;

function Field(props: {
  field: FieldId;
  error: string | undefined;
  hint?: ComponentChildren;
  optional?: boolean;
  children: (aria: Record<string, string | undefined>) => ComponentChildren;
}) {
  const { field, error, hint, optional } = props;
  const describedBy = [hint ? hintId(field) : '', error ? errorId(field) : ''].filter(Boolean).join(' ');
  return (
    <div class={error ? 'field invalid' : 'field'}>
      <label for={fieldId(field)}>
        {LABELS[field]}
        {optional && <span class="optional"> (optional)</span>}
      </label>
      {props.children({
        id: fieldId(field),
        name: field,
        'aria-invalid': error ? 'true' : undefined,
        'aria-describedby': describedBy || undefined,
      })}
      {hint && (
        <p class="hint" id={hintId(field)}>
          {hint}
        </p>
      )}
      {error && (
        <p class="field-error" id={errorId(field)}>
          {error}
        </p>
      )}
    </div>
  );
}

export function CreateForm() {
  const [errors, setErrors] = useState<Errors>({});
  const [formError, setFormError] = useState<string>();
  const [submitting, setSubmitting] = useState(false);
  const [focusField, setFocusField] = useState<{ field: FieldId } | undefined>();
  const formRef = useRef<HTMLFormElement>(null);
  const formErrorRef = useRef<HTMLParagraphElement>(null);

  // After an error is shown: focus its field (each error a new object, so the same field twice focuses again).
  useEffect(() => {
    if (focusField) document.getElementById(fieldId(focusField.field))?.focus();
  }, [focusField]);

  const showError = (error: unknown) => {
    const field =
      error instanceof RpcError && error.code === 'INVALID_ARGUMENT' ? fieldFor(error.field) : undefined;
    if (field && error instanceof RpcError) {
      setErrors({ [field]: fieldMessage(error.field!, error.message) });
      setFocusField({ field });
    } else {
      setFormError(errorText(error));
      requestAnimationFrame(() => formErrorRef.current?.focus());
    }
  };

  const onSubmit = async (event: SubmitEvent) => {
    event.preventDefault();
    if (submitting) return;
    const data = new FormData(formRef.current!);
    const text = (key: string) => String(data.get(key) ?? '').trim();
    setErrors({});
    setFormError(undefined);

    const parsed = parseForwards(text('forwards'));
    if ('error' in parsed) {
      setErrors({ forwards: parsed.error });
      setFocusField({ field: 'forwards' });
      return;
    }
    const spec: Record<string, unknown> = {
      name: text('name'),
      cpus: Number(text('cpus')),
      memory: text('memory'),
      kernel: text('kernel'),
    };
    if (text('cmdline')) spec.cmdline = text('cmdline');
    if (text('disk')) spec.disks = [{ path: text('disk') }];
    if (parsed.forwards.length > 0) spec.network = { forwards: parsed.forwards };
    const start = data.get('start') === 'on';

    setSubmitting(true);
    let name: string;
    try {
      const vm = await rpc('vm.create', { spec });
      name = vm.name;
      // The daemon decides whether a new VM boots; make it what the box asks for.
      if (start && vm.status === 'stopped') {
        await rpc('vm.start', { name }).catch((error: unknown) => {
          setNotice(name, `Created, but starting it failed: ${errorText(error)}`);
        });
      } else if (!start && vm.status === 'running') {
        await rpc('vm.stop', { name }).catch((error: unknown) => {
          setNotice(name, `Created, but stopping it failed: ${errorText(error)}`);
        });
      }
    } catch (error) {
      setSubmitting(false);
      showError(error);
      return;
    }
    navigate(href.detail(name));
  };

  return (
    <section class="create-page" aria-labelledby="page-title">
      <PageHeading title="Create a VM" />
      <form ref={formRef} class="create-form" onSubmit={onSubmit} aria-describedby="create-note">
        <p id="create-note" class="hint">
          The daemon checks every value; what it refuses is shown at its field.
        </p>
        <Field field="name" error={errors.name} hint="Letters, digits, '_', '.', '-'; up to 63.">
          {(aria) => (
            <input {...aria} type="text" required maxLength={63} autocomplete="off" spellcheck={false} />
          )}
        </Field>
        <div class="field-row">
          <Field field="cpus" error={errors.cpus}>
            {(aria) => <input {...aria} type="number" required min={1} max={254} step={1} defaultValue="1" />}
          </Field>
          <Field field="memory" error={errors.memory} hint="A size such as 512M or 2G.">
            {(aria) => <input {...aria} type="text" required defaultValue="512M" spellcheck={false} />}
          </Field>
        </div>
        <Field field="kernel" error={errors.kernel} hint="Absolute path on the host (vmlinux or bzImage).">
          {(aria) => (
            <input {...aria} type="text" required placeholder="/var/lib/myhv/vmlinux" spellcheck={false} />
          )}
        </Field>
        <Field field="cmdline" optional error={errors.cmdline}>
          {(aria) => (
            <input {...aria} type="text" placeholder="console=ttyS0 reboot=k panic=1" spellcheck={false} />
          )}
        </Field>
        <Field
          field="disk"
          optional
          error={errors.disk}
          hint="Absolute path of a raw disk image on the host."
        >
          {(aria) => <input {...aria} type="text" spellcheck={false} />}
        </Field>
        <Field
          field="forwards"
          optional
          error={errors.forwards}
          hint="Host port to guest port, comma-separated: 8080:80/tcp, 2222:22"
        >
          {(aria) => <input {...aria} type="text" spellcheck={false} autocomplete="off" />}
        </Field>
        <div class="field checkbox">
          <input id="create-start" name="start" type="checkbox" defaultChecked />
          <label for="create-start">Start after create</label>
        </div>
        {formError && (
          <p class="error" role="alert" ref={formErrorRef} tabIndex={-1}>
            {formError}
          </p>
        )}
        <div class="actions">
          <button type="submit" class="primary" disabled={submitting} aria-describedby="create-progress">
            Create
          </button>
          <a href={href.list()} class="button">
            Cancel
          </a>
          <span id="create-progress" role="status">
            {submitting ? 'Creating…' : ''}
          </span>
        </div>
      </form>
    </section>
  );
}
