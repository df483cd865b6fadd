// The model card: copy buttons for the usage snippets, and "only changed" for the hyperparameters.
document.querySelectorAll("button[data-copy]").forEach((button) => button.addEventListener("click", async () => {
  const text = document.getElementById(button.dataset.copy).innerText;
  let done = false;
  try {
    await navigator.clipboard.writeText(text);
    done = true;
  } catch (e) {  // no clipboard API (a page served over plain HTTP to another machine): select it instead
    const range = document.createRange();
    range.selectNodeContents(document.getElementById(button.dataset.copy));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    done = document.execCommand && document.execCommand("copy");
  }
  button.textContent = done ? "Copied" : "Press Ctrl+C";
  setTimeout(() => { button.textContent = "Copy"; }, 2000);
}));

const onlyChanged = document.getElementById("only-changed");
if (onlyChanged) {
  onlyChanged.addEventListener("change", () => {
    document.querySelector("table.params").classList.toggle("only-changed", onlyChanged.checked);
  });
}
