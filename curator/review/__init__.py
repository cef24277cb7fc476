"""`curator review`: findings about image content, and reviewers' decisions on them.

    quality       blur, dark, bright, low-information, low-resolution, odd-aspect, greyscale
    privacy       face and eye (OpenCV's Haar cascades from cv2.data)
    offtopic      colour and texture outliers among the dataset's images
    labelissues   confident learning over out-of-fold probabilities
    findings      findings and decision events in the catalog (migration 6)
    run           `curator review --run`: what is missing, computed incrementally
    oof           out-of-fold probabilities from the baseline CNN (`--with-cv`)
    prompt        the interactive `curator review` prompt

Every check is a pure function of decoded pixels (or of probabilities) and the
``[review]`` thresholds, with a version and parameters stored beside each finding.
"""
