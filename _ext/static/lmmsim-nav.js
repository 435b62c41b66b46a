/* The sidebar buttons of sphinx-book-theme 1.3 with pydata-sphinx-theme 0.17.
 *
 * Both themes bind their drawer code to document.querySelector(".primary-toggle") (and
 * ".secondary-toggle"), i.e. to the FIRST such button. pydata-sphinx-theme 0.17 renders a second pair
 * in the page header (.bd-header), which sphinx-book-theme hides with CSS; it comes first, so the
 * visible buttons in the article header get no listener and do nothing at any width.
 * Upstream: pydata-sphinx-theme issue 2451, sphinx-book-theme issues 988 and 999 (fix proposed in
 * sphinx-book-theme PR 991, and PR 1000, which drops the header pair from the template as done here).
 * This script is loaded with `defer` from <head>, so it runs before both themes' code (deferred at
 * the end of <body>, or waiting for DOMContentLoaded). Remove it when the pinned themes fix the bug.
 */
document.querySelectorAll(".bd-header .sidebar-toggle").forEach((button) => button.remove());
