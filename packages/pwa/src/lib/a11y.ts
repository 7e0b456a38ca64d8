/**
 * naive-ui's card (and drawer) headers carry `role="heading"` twice and no `aria-level` (axe: a critical
 * aria-required-attr). Until the library fixes it, the outer one loses the role and the inner one gets
 * level 2 (cards sit under the page's h1). A MutationObserver catches cards rendered later.
 */
export function fixLibraryHeadings(root: ParentNode = document): void {
  for (const el of root.querySelectorAll<HTMLElement>('.n-card-header[role="heading"]'))
    el.removeAttribute('role')
  for (const el of root.querySelectorAll<HTMLElement>('[role="heading"]:not([aria-level])'))
    el.setAttribute('aria-level', '2')
}

export function watchLibraryHeadings(): () => void {
  fixLibraryHeadings()
  let queued = false
  const observer = new MutationObserver(() => {
    if (queued) return
    queued = true
    queueMicrotask(() => {
      queued = false
      fixLibraryHeadings()
    })
  })
  observer.observe(document.body, { childList: true, subtree: true })
  return () => observer.disconnect()
}
