// The UI's only script, served from this origin (the pages' Content-Security-Policy allows no
// inline script): a form with data-confirm asks first; a select with data-autosubmit sends its
// form when it changes.
"use strict";
document.addEventListener("submit", (event) => {
  const question = event.target.dataset ? event.target.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
document.addEventListener("change", (event) => {
  if (event.target.matches && event.target.matches("select[data-autosubmit]")) {
    event.target.form.submit();
  }
});
