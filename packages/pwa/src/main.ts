document.getElementById('app')!.textContent = 'sharedLLM'
