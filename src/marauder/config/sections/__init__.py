"""One typed model per config section. Stages receive only their own section."""
