FROM busybox

FROOM busybox
