// The capture page (placeholder until the page lands).
document.getElementById("app").textContent = "tern capture";
