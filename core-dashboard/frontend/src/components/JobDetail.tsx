import { useEffect, useState } from 'react'
import { api, type FailedJob } from '../lib/api'
import { buttonClass, Modal } from './ConfirmDialog'

/** The payload as indented JSON when it is JSON, else as it is. */
export function prettyPayload(payload: string): string {
  try {
    return JSON.stringify(JSON.parse(payload), null, 2)
  } catch {
    return payload
  }
}

/** One failure in full: payload, error, attempts, with Retry and Forget. */
export function JobDetail({
  id,
  onClose,
  onRetry,
  onForget,
}: {
  id: number
  onClose: () => void
  onRetry: (id: number) => void
  onForget: (id: number) => void
}) {
  const [job, setJob] = useState<FailedJob | null>(null)
  const [error, setError] = useState<string | null>(null)
  useEffect(() => {
    let live = true
    api<FailedJob>(`api/failed/${id}`).then(
      (reply) => live && setJob(reply.data),
      (e: Error) => live && setError(e.message),
    )
    return () => {
      live = false
    }
  }, [id])
  return (
    <Modal labelledBy="detail-title" onDismiss={onClose} wide>
      <div className="flex items-start justify-between gap-3">
        <h2 id="detail-title" className="text-lg font-semibold break-all">
          Failed job #{id}
          {job && <span className="font-mono font-normal"> · {job.job_name}</span>}
        </h2>
        <button type="button" className={buttonClass('plain', true)} onClick={onClose}>
          Close
        </button>
      </div>
      {error && (
        <p role="alert" className="mt-3 text-sm text-red-700 dark:text-red-300">
          {error}
        </p>
      )}
      {!job && !error && <p className="mt-3 text-sm">Loading…</p>}
      {job && (
        <div className="mt-3 space-y-3 text-sm">
          <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1">
            <dt className="text-slate-600 dark:text-slate-400">Queue</dt>
            <dd className="font-mono">{job.queue}</dd>
            <dt className="text-slate-600 dark:text-slate-400">Attempts</dt>
            <dd data-testid="detail-attempts">{job.attempts}</dd>
            <dt className="text-slate-600 dark:text-slate-400">Failed at</dt>
            <dd>{new Date(job.failed_at).toLocaleString()}</dd>
            <dt className="text-slate-600 dark:text-slate-400">Job id</dt>
            <dd className="font-mono break-all">{job.job_id}</dd>
            {job.group_id && (
              <>
                <dt className="text-slate-600 dark:text-slate-400">Group</dt>
                <dd className="font-mono break-all">{job.group_id}</dd>
              </>
            )}
          </dl>
          <div>
            <h3 className="font-semibold">Error</h3>
            <pre className="mt-1 max-h-48 overflow-auto rounded-md bg-red-50 p-3 text-xs whitespace-pre-wrap break-words text-red-900 dark:bg-red-950 dark:text-red-100">
              {job.error}
            </pre>
          </div>
          <div>
            <h3 className="font-semibold">Payload</h3>
            <pre
              data-testid="detail-payload"
              className="mt-1 max-h-72 overflow-auto rounded-md bg-slate-100 p-3 font-mono text-xs text-slate-900 dark:bg-slate-800 dark:text-slate-100"
            >
              {prettyPayload(job.payload)}
            </pre>
          </div>
          <div className="flex flex-wrap justify-end gap-2">
            <button type="button" className={buttonClass('danger')} onClick={() => onForget(id)}>
              Forget
            </button>
            <button type="button" className={buttonClass('primary')} onClick={() => onRetry(id)}>
              Retry
            </button>
          </div>
        </div>
      )}
    </Modal>
  )
}
