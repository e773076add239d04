// formats_safetensors tests
