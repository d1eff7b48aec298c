"""The face engine shared by enrolment and the gate: image sources, detection, quality, template, 1:1 compare, wiping."""
