"""lokit frames: lokit's own local protocol between lokit services (`wire`), its
server (`server`) and client (`client`)."""
