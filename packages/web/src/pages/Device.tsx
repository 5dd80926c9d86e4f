import { useState } from 'react';
import { api, type Credential, type DeviceDetails } from '../api';
import { AssignmentBadge, Ago, ConfirmButton, DeviceStatusBadge, Empty, ErrorBox, Hash, Loading, Notice, PageTitle, Section } from '../components';
import { attackSource, formatBytes, isUnknownImage } from '../format';
import { useAction, useLoad } from '../hooks';
import { Link } from '../router';

const REFRESH_MS = 5_000;

export function DevicePage({ id }: { id: string }) {
  const device = useLoad(`device:${id}`, () => api.device(id), REFRESH_MS);
  const history = useLoad(`history:${id}`, () => api.installationHistory(id, 10), REFRESH_MS);
  const creds = useLoad(`creds:${id}`, () => api.credentials(id));
  const cancel = useAction(() => api.cancelDevice(id));

  if (device.error?.status === 404)
    return (
      <>
        <PageTitle title="Device not found" />
        <ErrorBox error={device.error} title={`No device ${id}.`} />
        <p>
          <Link to="/devices">Back to the devices</Link>
        </p>
      </>
    );
  const d = device.data;
  if (!d)
    return (
      <>
        <PageTitle title={id} />
        <ErrorBox error={device.error} title="Could not load the device." />
        {device.loading ? <Loading /> : null}
      </>
    );

  const active = d.updates.filter((u) => u.status === 'assigned' || u.status === 'in_flight');
  return (
    <>
      <PageTitle
        title={d.deviceName}
        actions={
          <>
            {d.deviceStatus === 'UpdatePending' ? (
              <ConfirmButton
                label="Cancel update"
                confirm="Cancel the update assigned to this device?"
                busy={cancel.busy}
                onConfirm={() => void cancel.run().then(() => device.reload())}
              />
            ) : null}
            <Link to={`/updates/new?devices=${encodeURIComponent(d.deviceId)}`} className="button">
              Update this device
            </Link>
          </>
        }
      >
        <span className="mono">{d.deviceId}</span> · {d.deviceType}
      </PageTitle>
      <ErrorBox error={cancel.error} title="Could not cancel." />
      {cancel.result ? (
        <Notice kind="success">{cancel.result.length > 0 ? 'The pending update was cancelled.' : 'Nothing was pending any more.'}</Notice>
      ) : null}

      <dl className="facts card">
        <div>
          <dt>Status</dt>
          <dd>
            <DeviceStatusBadge status={d.deviceStatus} />
          </dd>
        </div>
        <div>
          <dt>Last seen</dt>
          <dd>
            <Ago iso={d.lastSeen} />
          </dd>
        </div>
        <div>
          <dt>Registered</dt>
          <dd>
            <Ago iso={d.activatedAt} />
          </dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd>
            <Ago iso={d.createdAt} />
          </dd>
        </div>
        <div>
          <dt>Groups</dt>
          <dd>
            {d.groups.length === 0 ? (
              <span className="muted">none</span>
            ) : (
              d.groups.map((g, i) => (
                <span key={g.id}>
                  {i > 0 ? ', ' : ''}
                  <Link to={`/groups/${encodeURIComponent(g.id)}`}>{g.name}</Link>
                </span>
              ))
            )}
          </dd>
        </div>
        <div>
          <dt>Last installation</dt>
          <dd>
            {d.lastInstallation ? (
              <>
                <span className={d.lastInstallation.success ? 'ok' : 'bad'}>{d.lastInstallation.success ? 'succeeded' : 'failed'}</span>{' '}
                <Ago iso={d.lastInstallation.receivedAt} />
              </>
            ) : (
              <span className="muted">none reported</span>
            )}
          </dd>
        </div>
      </dl>

      <Section title="ECUs">
        {d.ecus.length === 0 ? (
          <Empty>The device has not registered its ECUs yet: it does so on its first check-in.</Empty>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">ECU serial</th>
                <th scope="col">Hardware id</th>
                <th scope="col">Installed image</th>
                <th scope="col">Size</th>
                <th scope="col">SHA-256</th>
                <th scope="col">Reported</th>
              </tr>
            </thead>
            <tbody>
              {d.ecus.map((e) => (
                <tr key={e.ecuSerial}>
                  <td>
                    <span className="mono">{e.ecuSerial}</span>{' '}
                    {e.primary ? <span className="tag">Primary</span> : <span className="tag muted">Secondary</span>}
                  </td>
                  <td className="mono">{e.hardwareId}</td>
                  {e.installedImage && !isUnknownImage(e.installedImage) ? (
                    <>
                      <td className="mono">{e.installedImage.filepath}</td>
                      <td>{formatBytes(e.installedImage.length)}</td>
                      <td>
                        <Hash value={e.installedImage.hashes['sha256']} />
                      </td>
                    </>
                  ) : (
                    <td colSpan={3} className="muted">
                      {e.installedImage ? 'unknown: nothing installed through Uptide yet' : 'not reported yet'}
                    </td>
                  )}
                  <td>
                    <Ago iso={e.installedImage?.reportedAt ?? null} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>

      <Section title="Updates">
        <UpdatesTable d={d} />
        {active.length > 0 ? <p className="muted small">An update stays cancellable until the device fetches it; then it is in flight.</p> : null}
      </Section>

      <Section title="Installation reports">
        <ErrorBox error={history.error} />
        {history.data === undefined ? null : history.data.length === 0 ? (
          <Empty>No installation reported yet.</Empty>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">Received</th>
                <th scope="col">Result</th>
                <th scope="col">Code</th>
                <th scope="col">Description</th>
                <th scope="col">Correlation id</th>
              </tr>
            </thead>
            <tbody>
              {history.data.map((r, i) => (
                <tr key={`${r.correlationId}-${i}`}>
                  <td>
                    <Ago iso={r.receivedAt} />
                  </td>
                  <td>
                    <span className={r.success ? 'ok' : 'bad'}>{r.success ? 'Succeeded' : 'Failed'}</span>
                  </td>
                  <td className="mono">{r.code}</td>
                  <td>{r.description || <span className="muted">–</span>}</td>
                  <td className="mono small">{r.correlationId}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>

      <Section title="Attacks reported">
        {d.attacks.length === 0 ? (
          <Empty>None: every metadata and image this device checked passed verification.</Empty>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">ECU</th>
                <th scope="col">Code</th>
                <th scope="col">Message</th>
                <th scope="col">Source</th>
              </tr>
            </thead>
            <tbody>
              {d.attacks.map((a, i) => (
                <tr key={`${a.at}-${i}`}>
                  <td>
                    <Ago iso={a.at} />
                  </td>
                  <td className="mono">{a.ecu ?? '–'}</td>
                  <td>
                    <span className="badge attack">{a.code}</span>
                  </td>
                  <td>{a.message}</td>
                  <td>
                    {attackSource(a.source)}
                    {a.repository ? <div className="muted small">{`${a.repository}${a.role ? ` ${a.role}` : ''}`}</div> : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>

      <DeviceGroups d={d} onChange={device.reload} />

      <Section title="Credentials">
        <ErrorBox error={creds.error} />
        {creds.data === undefined ? null : <Credentials deviceId={d.deviceId} list={creds.data} onChange={creds.reload} />}
      </Section>
    </>
  );
}

function UpdatesTable({ d }: { d: DeviceDetails }) {
  if (d.updates.length === 0) return <Empty>No update was ever assigned to this device.</Empty>;
  const rows = [...d.updates].sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">Update</th>
          <th scope="col">ECU</th>
          <th scope="col">Image</th>
          <th scope="col">Status</th>
          <th scope="col">Result</th>
          <th scope="col">Changed</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((u) => (
          <tr key={`${u.updateId}-${u.ecu}`}>
            <td>
              <Link to={`/updates/${encodeURIComponent(u.updateId)}`} className="mono small">
                {u.updateId.slice(0, 8)}
              </Link>
            </td>
            <td className="mono">{u.ecu}</td>
            <td className="mono">{u.target}</td>
            <td>
              <AssignmentBadge status={u.status} />
            </td>
            <td>{u.resultCode ? <span title={u.resultDescription ?? undefined}>{u.resultCode}</span> : <span className="muted">–</span>}</td>
            <td>
              <Ago iso={u.updatedAt} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function DeviceGroups({ d, onChange }: { d: DeviceDetails; onChange: () => void }) {
  const groups = useLoad('groups', () => api.groups());
  const [choice, setChoice] = useState('');
  const add = useAction(async (g: string) => {
    await api.addToGroup(g, d.deviceId);
    setChoice('');
    onChange();
  });
  const remove = useAction(async (g: string) => {
    await api.removeFromGroup(g, d.deviceId);
    onChange();
  });
  const member = new Set(d.groups.map((g) => g.id));
  const candidates = (groups.data?.values ?? []).filter((g) => !member.has(g.id));
  return (
    <Section title="Groups">
      <ErrorBox error={add.error ?? remove.error} />
      {d.groups.length === 0 ? (
        <Empty>This device is in no group.</Empty>
      ) : (
        <ul className="chips">
          {d.groups.map((g) => (
            <li key={g.id}>
              <Link to={`/groups/${encodeURIComponent(g.id)}`}>{g.name}</Link>
              <button type="button" className="chip-x" aria-label={`Remove from group ${g.name}`} disabled={remove.busy} onClick={() => void remove.run(g.id)}>
                ×
              </button>
            </li>
          ))}
        </ul>
      )}
      {candidates.length > 0 ? (
        <form
          className="inline"
          onSubmit={(e) => {
            e.preventDefault();
            if (choice) void add.run(choice);
          }}
        >
          <label htmlFor="add-group">Add to group</label>
          <select id="add-group" value={choice} onChange={(e) => setChoice(e.target.value)}>
            <option value="">Choose a group…</option>
            {candidates.map((g) => (
              <option key={g.id} value={g.id}>
                {g.name}
              </option>
            ))}
          </select>
          <button type="submit" className="secondary" disabled={!choice || add.busy}>
            Add
          </button>
        </form>
      ) : null}
    </Section>
  );
}

function Credentials({ deviceId, list, onChange }: { deviceId: string; list: Credential[]; onChange: () => void }) {
  const revoke = useAction(async (serial: string) => {
    await api.revokeCredential(deviceId, serial);
    onChange();
  });
  if (list.length === 0)
    return (
      <Empty>
        No certificate yet: issue one with <code>npx uptide devices provision</code>, or the device gets one at its first connection with a fleet{' '}
        <code>credentials.zip</code>.
      </Empty>
    );
  return (
    <>
      <ErrorBox error={revoke.error} title="Could not revoke." />
      <table>
        <thead>
          <tr>
            <th scope="col">Serial</th>
            <th scope="col">Kind</th>
            <th scope="col">Issued</th>
            <th scope="col">Expires</th>
            <th scope="col">State</th>
            <th scope="col">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {list.map((c) => (
            <tr key={c.serial}>
              <td>
                <Hash value={c.serial} />
              </td>
              <td>{c.kind}</td>
              <td>
                <Ago iso={c.createdAt} />
              </td>
              <td>
                <Ago iso={c.notAfter} />
              </td>
              <td>{c.revokedAt ? <span className="bad">revoked</span> : <span className="ok">valid</span>}</td>
              <td className="right">
                {c.revokedAt ? null : (
                  <ConfirmButton
                    label="Revoke"
                    confirm="The gateway will refuse this certificate from now on. Revoke?"
                    busy={revoke.busy}
                    onConfirm={() => void revoke.run(c.serial)}
                  />
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
