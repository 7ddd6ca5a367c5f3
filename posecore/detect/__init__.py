"""Start from a photo alone: detect the person, initialise the body and its camera.

- :mod:`posecore.detect.landmarks`: MediaPipe Pose (imported lazily; only these commands need it) -> 33 landmarks
  in 2D and 3D and a person mask.
- :mod:`posecore.detect.joint_map`: which landmark plays which body joint, for SMPL-X and Anny.
- :mod:`posecore.detect.kinematics`: joints-only forward kinematics, fast enough to optimise in milliseconds.
- :mod:`posecore.detect.camera_solve`: focal length (EXIF or a stated default) and the camera translation.
- :mod:`posecore.detect.initialise`: bone directions from the 3D landmarks, camera, 2D refinement.
- :mod:`posecore.detect.photo`: the one call the CLI and Blender use: :func:`~posecore.detect.photo.photo_start`.
- :mod:`posecore.detect.files` / :mod:`posecore.detect.overlay`: what ``detect`` writes, and its pictures.

For a front end (the Blender add-on's "Detect pose")::

    from posecore.detect.photo import photo_start

    start = photo_start(image_path, body, size=(width, height), person=None)  # person: "x0,y0,x1,y1" or None
    start.init.params            # BodyParams: rotations (J, 3), translation, shape, expression of ``body``
    start.init.camera            # PinholeCamera at (width, height); .to_blender() gives lens, shift, matrix_world
    start.mask                   # (height, width) person mask in [0, 1] -> FitProblem(person_mask=...)
    start.init.keypoints         # Keypoints2D -> FitProblem(keypoints=...) for the fit's keypoint term
    start.summary()              # focal length and its source, reprojection error, timings (JSON-ready)

Errors: :class:`~posecore.detect.landmarks.NoPersonFoundError` (a ParameterError) when nobody is found,
InputFileError for an unreadable photo, BackendUnavailableError when mediapipe is not installed.
"""
