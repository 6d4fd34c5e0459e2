import { useCallback, useEffect, useRef, useState, type ReactNode } from 'react'

export interface ConfirmRequest {
  title: string
  body: ReactNode
  confirmLabel: string
  danger?: boolean
}

interface Pending extends ConfirmRequest {
  resolve: (ok: boolean) => void
}

/** A promise-returning confirmation: `await confirm({...})` is true when the user confirmed. */
export function useConfirm(): [(request: ConfirmRequest) => Promise<boolean>, ReactNode] {
  const [pending, setPending] = useState<Pending | null>(null)
  const confirm = useCallback(
    (request: ConfirmRequest) => new Promise<boolean>((resolve) => setPending({ ...request, resolve })),
    [],
  )
  const close = (ok: boolean) => {
    pending?.resolve(ok)
    setPending(null)
  }
  const dialog = pending ? <ConfirmDialog request={pending} onClose={close} /> : null
  return [confirm, dialog]
}

function ConfirmDialog({ request, onClose }: { request: ConfirmRequest; onClose: (ok: boolean) => void }) {
  const cancel = useRef<HTMLButtonElement>(null)
  useEffect(() => {
    cancel.current?.focus()
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && onClose(false)
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [onClose])
  return (
    <Modal labelledBy="confirm-title" onDismiss={() => onClose(false)}>
      <h2 id="confirm-title" className="text-lg font-semibold">
        {request.title}
      </h2>
      <div className="mt-2 text-sm text-slate-700 dark:text-slate-300">{request.body}</div>
      <div className="mt-5 flex flex-wrap justify-end gap-2">
        <button ref={cancel} type="button" className={buttonClass('plain')} onClick={() => onClose(false)}>
          Cancel
        </button>
        <button
          type="button"
          className={buttonClass(request.danger ? 'danger' : 'primary')}
          onClick={() => onClose(true)}
        >
          {request.confirmLabel}
        </button>
      </div>
    </Modal>
  )
}

/** A centred dialog over a dimmed page. */
export function Modal({
  labelledBy,
  onDismiss,
  wide,
  children,
}: {
  labelledBy: string
  onDismiss: () => void
  wide?: boolean
  children: ReactNode
}) {
  return (
    <div
      className="fixed inset-0 z-20 flex items-center justify-center bg-slate-900/60 p-3"
      onMouseDown={(e) => e.target === e.currentTarget && onDismiss()}
    >
      <div
        role="dialog"
        aria-modal="true"
        aria-labelledby={labelledBy}
        className={`max-h-full w-full overflow-y-auto rounded-lg border border-slate-200 bg-white p-5 shadow-xl dark:border-slate-700 dark:bg-slate-900 ${wide ? 'max-w-2xl' : 'max-w-md'}`}
      >
        {children}
      </div>
    </div>
  )
}

export type ButtonKind = 'primary' | 'danger' | 'plain'

export function buttonClass(kind: ButtonKind, small = false): string {
  const size = small ? 'px-2.5 py-1 text-xs' : 'px-3 py-1.5 text-sm'
  const colour = {
    primary: 'bg-blue-700 text-white hover:bg-blue-800 dark:bg-blue-500 dark:text-slate-950 dark:hover:bg-blue-400',
    danger: 'bg-red-700 text-white hover:bg-red-800 dark:bg-red-500 dark:text-slate-950 dark:hover:bg-red-400',
    plain:
      'border border-slate-300 bg-white text-slate-800 hover:bg-slate-100 dark:border-slate-600 dark:bg-slate-800 dark:text-slate-100 dark:hover:bg-slate-700',
  }[kind]
  return `${size} ${colour} rounded-md font-medium disabled:cursor-not-allowed disabled:opacity-50 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-500`
}
